package config_test

import (
	"os"
	"testing"

	"github.com/keyd-io/keyd/config"
)

// FuzzParse feeds arbitrary bytes to the configuration parser: any input must give a
// configuration or a clean error, never a panic.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../config.toml.example")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	if notify, err := os.ReadFile("../docs/notify.config.toml"); err == nil {
		f.Add(notify)
	}
	f.Add([]byte("[[keyset]]\nname = \"a\"\nschedule = \"CRON_TZ=Europe/Berlin 0 3 * * *\"\n"))
	f.Add([]byte("[[keyset]]\nname = \"a\"\nschedule = \"@every 1s\"\npublish_lead = \"1ns\"\n"))
	f.Add([]byte("[storage]\nbackend = \"vault\"\n[storage.vault]\nrefresh = \"7d\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data, "fuzz.toml")
		if err == nil && len(cfg.Keysets) == 0 {
			t.Fatal("a valid configuration without keysets")
		}
	})
}
