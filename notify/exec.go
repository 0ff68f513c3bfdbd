package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/config"
)

const (
	// maxHookOutput bounds how much of a hook's output is kept for the log.
	maxHookOutput = 4 << 10
	// hookWaitDelay is how long keyd waits for a killed hook's output pipes to close.
	hookWaitDelay = 2 * time.Second
)

// execHook runs one command per event, the event JSON on its standard input.
type execHook struct {
	command []string
	label   string
	timeout time.Duration
	log     *zap.Logger
}

func newExecHook(cfg config.Exec, log *zap.Logger) *execHook {
	return &execHook{
		command: cfg.Command,
		// Only the program: arguments may carry tokens.
		label:   filepath.Base(cfg.Command[0]),
		timeout: cfg.Timeout.D(),
		log:     log,
	}
}

// deliver runs the command once. Exit status 0 is success; a non-zero status, a failure to
// start and a timeout are retried. The hook and anything it started are killed on timeout.
func (x *execHook) deliver(ctx context.Context, p *pending) error {
	ctx, cancel := context.WithTimeout(ctx, x.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, x.command[0], x.command[1:]...)
	cmd.Stdin = bytes.NewReader(p.Body)
	cmd.Env = append(hookEnviron(),
		"KEYD_EVENT="+p.event.Type,
		"KEYD_EVENT_ID="+p.event.ID,
		"KEYD_KEYSET="+p.event.Keyset,
		"KEYD_KID="+p.event.KID,
		"KEYD_ALG="+p.event.Alg,
		"KEYD_PREVIOUS_KID="+p.event.PreviousKID,
		"KEYD_JWKS_URI="+p.event.JWKSURI,
	)
	out := &boundedBuffer{limit: maxHookOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = hookWaitDelay

	err := cmd.Run()
	fields := []zap.Field{zap.String("hook", x.label), zap.String("event_id", p.ID)}
	if text := out.String(); text != "" {
		fields = append(fields, zap.String("output", text))
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		x.log.Info("exec hook finished", fields...)
		return nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		x.log.Warn("exec hook timed out", fields...)
		return fmt.Errorf("hook %s: killed after timeout %s", x.label, x.timeout)
	case errors.As(err, &exitErr):
		x.log.Warn("exec hook failed", append(fields, zap.Int("exit_code", exitErr.ExitCode()))...)
		return fmt.Errorf("hook %s: %w", x.label, err)
	default:
		return fmt.Errorf("run hook %s: %w", x.label, err)
	}
}

// hookEnviron returns keyd's environment as hooks get it: without the VAULT_* variables,
// which may hold keyd's own Vault credentials, and without stale KEYD_* event variables.
func hookEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "KEYD_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// boundedBuffer keeps the first limit bytes written to it and counts the rest.
type boundedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	limit   int
	dropped int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.limit - b.buf.Len()
	if room >= len(p) {
		b.buf.Write(p)
		return len(p), nil
	}
	b.buf.Write(p[:max(room, 0)])
	b.dropped += len(p) - max(room, 0)
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	text := string(bytes.TrimRight(b.buf.Bytes(), "\n"))
	if b.dropped > 0 {
		text += fmt.Sprintf("\n… %d more bytes not kept", b.dropped)
	}
	return text
}
