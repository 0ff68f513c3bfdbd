package config

import (
	"fmt"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a Go duration string ("90s", "1h10m").
// A "d" suffix is accepted for whole days ("7d"), since key lifetimes are often days.
type Duration time.Duration

// UnmarshalText parses a duration string; it refuses negative values.
func (d *Duration) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	parsed, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(parsed)
	return nil
}

// MarshalText writes the duration the way time.Duration prints it.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// maxDays bounds every duration to about a century, far from time.Duration's overflow.
const maxDays = 36500

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	text := s
	var days int
	if rest, ok := strings.CutSuffix(s, "d"); ok {
		if _, err := fmt.Sscanf(rest, "%d", &days); err != nil || fmt.Sprint(days) != rest {
			return 0, fmt.Errorf("invalid duration %q: use a whole number of days (\"7d\") "+
				"or Go units (\"90s\", \"1h10m\")", text)
		}
		if days < 0 || days > maxDays {
			return 0, fmt.Errorf("invalid duration %q: between 1 and %d days", text, maxDays)
		}
		s = "0s"
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: use Go units such as \"90s\", \"1h10m\" or \"7d\"", text)
	}
	d += time.Duration(days) * 24 * time.Hour
	switch {
	case d < 0:
		return 0, fmt.Errorf("invalid duration %q: must not be negative", text)
	case d == 0:
		// Zero would read as "not set" and silently become the default.
		return 0, fmt.Errorf("invalid duration %q: must be positive (leave the key out for "+
			"its default)", text)
	case d > maxDays*24*time.Hour:
		return 0, fmt.Errorf("invalid duration %q: at most %d days", text, maxDays)
	}
	return d, nil
}
