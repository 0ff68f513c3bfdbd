package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
)

func TestSlowStart(t *testing.T) {
	for _, tc := range []struct {
		name       string
		loadTime   time.Duration // how long loading takes; 0: never finishes
		wantErr    string
		wantExtend int
	}{
		{name: "fast storage", loadTime: time.Second},
		{name: "slow storage gets more time", loadTime: 7 * time.Second, wantExtend: 3},
		{
			name:    "hung storage is given up",
			wantErr: "still loading keyset api from /var/lib/keyd/api/state.json after 2m0s",
			// The last tick and the deadline fall together; either may come first.
			wantExtend: int(StartupTimeout/startupNotice) - 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				out := &sink{}
				svc := &service{log: zap.NewNop(), send: out.send, enabled: true}
				release := make(chan struct{})
				defer close(release)
				err := slowStart(context.Background(), svc, zap.NewNop(),
					func(ctx context.Context, doing func(string)) error {
						doing("loading keyset api from /var/lib/keyd/api/state.json")
						if tc.loadTime == 0 {
							<-release // hung: never returns while slowStart waits
							return nil
						}
						time.Sleep(tc.loadTime)
						return nil
					})
				switch {
				case tc.wantErr == "" && err != nil:
					t.Fatalf("slowStart = %v", err)
				case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) ||
					!errors.Is(err, context.DeadlineExceeded)):
					t.Fatalf("slowStart = %v, want a deadline error with %q", err, tc.wantErr)
				}
				got := out.count("EXTEND_TIMEOUT_USEC=10000000\nSTATUS=loading keyset api")
				if got != tc.wantExtend && (tc.loadTime != 0 || got != tc.wantExtend+1) {
					t.Errorf("%d extensions, want %d (%q)", got, tc.wantExtend, out.sent)
				}
			})
		})
	}
}
