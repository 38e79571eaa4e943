package sip

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// flowLog logs with the fields of one flow (call_id, from, to) and costs
// nothing until it writes a line. zap's With and WithLazy clone the logger
// for every request: a tenth of the CPU of a MESSAGE in BenchmarkMessageIn's
// profile, spent on flows that at the default level log nothing.
type flowLog struct {
	l      *zap.Logger // Stack.flowBase: skips write and the level method
	fields []zap.Field
}

// flow returns the logger for one request's flow.
func (s *Stack) flow(fields ...zap.Field) flowLog { return flowLog{s.flowBase, fields} }

func (f flowLog) write(lvl zapcore.Level, msg string, fs []zap.Field) {
	if ce := f.l.Check(lvl, msg); ce != nil {
		all := make([]zap.Field, 0, len(f.fields)+len(fs))
		ce.Write(append(append(all, f.fields...), fs...)...)
	}
}

func (f flowLog) Debug(msg string, fs ...zap.Field) { f.write(zapcore.DebugLevel, msg, fs) }
func (f flowLog) Info(msg string, fs ...zap.Field)  { f.write(zapcore.InfoLevel, msg, fs) }
func (f flowLog) Warn(msg string, fs ...zap.Field)  { f.write(zapcore.WarnLevel, msg, fs) }
func (f flowLog) Error(msg string, fs ...zap.Field) { f.write(zapcore.ErrorLevel, msg, fs) }
