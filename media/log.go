package media

import (
	"errors"
	"fmt"
	"io"

	"github.com/pion/logging"
	"go.uber.org/zap"
)

// pionLogs sends pion's logs to zap: its errors and warnings at debug level
// with the scope, since the relay reports what matters through Err.
type pionLogs struct{ log *zap.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With(zap.String("pion", scope)).Sugar()}
}

type pionLogger struct{ s *zap.SugaredLogger }

func (l pionLogger) Trace(string)              {}
func (l pionLogger) Tracef(string, ...any)     {}
func (l pionLogger) Debug(string)              {}
func (l pionLogger) Debugf(string, ...any)     {}
func (l pionLogger) Info(string)               {}
func (l pionLogger) Infof(string, ...any)      {}
func (l pionLogger) Warn(msg string)           { l.s.Debug(msg) }
func (l pionLogger) Warnf(f string, a ...any)  { l.s.Debug(fmt.Sprintf(f, a...)) }
func (l pionLogger) Error(msg string)          { l.s.Debug(msg) }
func (l pionLogger) Errorf(f string, a ...any) { l.s.Debug(fmt.Sprintf(f, a...)) }

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
