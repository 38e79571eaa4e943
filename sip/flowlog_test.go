package sip

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	zapobs "go.uber.org/zap/zaptest/observer"
)

// A flow's lines carry its fields and name the caller's line, not flowLog's.
func TestFlowLog(t *testing.T) {
	core, logs := zapobs.New(zap.InfoLevel)
	l := zap.New(core, zap.AddCaller())
	s := &Stack{log: l, flowBase: l.WithOptions(zap.AddCallerSkip(2))}
	f := s.flow(zap.String("call_id", "c1"))
	f.Debug("not written")
	f.Info("written", zap.Int("n", 1))
	es := logs.All()
	if len(es) != 1 {
		t.Fatalf("%d entries, want 1", len(es))
	}
	e := es[0]
	if m := e.ContextMap(); m["call_id"] != "c1" || m["n"] != int64(1) {
		t.Errorf("fields %v", m)
	}
	if !strings.HasSuffix(e.Caller.File, "flowlog_test.go") {
		t.Errorf("caller %s, want this test", e.Caller)
	}
}
