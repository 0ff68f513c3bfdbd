package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of samples.
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

// ms formats d in milliseconds with three significant digits or so.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func mib(bytes int64) string { return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20)) }

// machine describes where the figures were taken.
func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if name, value, ok := strings.Cut(line, ":"); ok &&
				strings.TrimSpace(name) == "model name" {
				model = strings.TrimSpace(value)
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (`nproc`), %s, %s/%s, keyd built with %s", runtime.NumCPU(),
		model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// table renders a Markdown table.
func table(header []string, rows [][]string) string {
	var b strings.Builder
	line := func(cells []string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---"
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

const resultsIntro = `# keyd benchmark results

Figures from ` + "`make bench-http`" + ` and ` + "`make bench-scale`" + ` (bench/), each of which
replaces its own section below. All traffic is to 127.0.0.1 on the machine named in the section.
`

// writeSection replaces the section named name in the Markdown file path (creating the
// file if need be), leaving the other sections as they are.
func writeSection(path, name, body string) error {
	if path == "" {
		return nil
	}
	begin := "<!-- keydbench " + name + " -->\n"
	end := "<!-- /keydbench " + name + " -->\n"
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if len(old) == 0 {
		old = []byte(resultsIntro)
	}
	section := []byte(begin + body + end)
	var out []byte
	i := bytes.Index(old, []byte(begin))
	j := bytes.Index(old, []byte(end))
	if i >= 0 && j > i {
		out = append(append(slices.Clone(old[:i]), section...), old[j+len(end):]...)
	} else {
		out = append(append(slices.Clone(old), '\n'), section...)
	}
	return os.WriteFile(path, out, 0o644)
}

// command tells how the figures were made.
func command() string {
	return "Command: `make bench-" + os.Args[1] + "`, which runs `bench/" + os.Args[1] +
		".sh`: `keydbench " + strings.Join(os.Args[1:], " ") + "`.\n"
}
