package daemon

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyd-io/keyd/rotation"
)

func TestProblemsOf(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	failing := errors.New("vault sealed")
	for _, tc := range []struct {
		name   string
		status rotation.Status
		want   []string
	}{
		{name: "healthy", status: rotation.Status{Loaded: true, NextChange: now.Add(time.Hour)}},
		{name: "not loaded", status: rotation.Status{}, want: []string{"keys not loaded"}},
		{
			name: "storage failing, nothing due yet",
			status: rotation.Status{Loaded: true, LastError: failing,
				FailingSince: now.Add(-time.Second), NextChange: now.Add(time.Hour)},
			want: []string{"storage failing since"},
		},
		{
			name: "a due change failing within the bound",
			status: rotation.Status{Loaded: true, LastError: failing,
				FailingSince: now.Add(-OverdueAfter), NextChange: now.Add(-OverdueAfter)},
			want: []string{"storage failing since"},
		},
		{
			name: "a due change failing past the bound",
			status: rotation.Status{Loaded: true, LastError: failing,
				FailingSince: now.Add(-OverdueAfter - time.Second),
				NextChange:   now.Add(-OverdueAfter - time.Second)},
			want: []string{"rotation overdue since", "storage failing since"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := problemsOf(tc.status, now)
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %d starting %q", got, len(tc.want), tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("problem %d = %q, want it to start %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}
