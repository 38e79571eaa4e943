// Command stox is the SIP–XMPP interworking gateway.
//
//	stox serve   -config FILE [-dev]   run the gateway
//	stox version                       print the version and schema version
//	stox account add|passwd|list|remove -config FILE [USER]
//	stox migrate -config FILE          apply the Postgres migrations
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "stox:", err)
		}
		os.Exit(2)
	}
}

const usage = `usage:
  stox serve -config FILE [-dev]
  stox version
  stox account add|passwd -config FILE USER   (password read from stdin)
  stox account list -config FILE
  stox account remove -config FILE USER
  stox migrate -config FILE
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serveCmd(ctx, args[1:], stderr)
	case "version":
		return versionCmd(stdout)
	case "account":
		return accountCmd(ctx, args[1:], stdin, stdout, stderr)
	case "migrate":
		return migrateCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// configFlags parses the flags every subcommand shares.
func configFlags(name string, args []string, stderr io.Writer) (*flag.FlagSet, *string, *bool, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "TOML configuration file")
	dev := fs.Bool("dev", false, "console logs at debug level instead of JSON")
	err := fs.Parse(args)
	return fs, path, dev, err
}
