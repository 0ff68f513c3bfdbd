package rotation_test

import (
	"testing"

	"github.com/keyd-io/keyd/rotation"
)

func TestMergeKeepsEveryRequester(t *testing.T) {
	for _, tc := range []struct {
		name   string
		first  rotation.Request
		later  rotation.Request
		wantBy string
	}{
		{name: "one requester", later: rotation.Request{Rotate: true, By: "SIGUSR1"},
			wantBy: "SIGUSR1"},
		{name: "two requesters", first: rotation.Request{Rotate: true, By: "SIGUSR1"},
			later: rotation.Request{Rotate: true, By: "admin uid 0"}, wantBy: "SIGUSR1, admin uid 0"},
		{name: "the same twice", first: rotation.Request{By: "SIGUSR1"},
			later: rotation.Request{By: "SIGUSR1"}, wantBy: "SIGUSR1"},
		{name: "nobody", first: rotation.Request{}, later: rotation.Request{}, wantBy: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.first.Merge(tc.later).By; got != tc.wantBy {
				t.Errorf("By = %q, want %q", got, tc.wantBy)
			}
		})
	}
}
