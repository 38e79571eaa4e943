package sip

import (
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestMain(m *testing.M) {
	// The test clients' sipgo instances log through the global default.
	sip.SetDefaultLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}
