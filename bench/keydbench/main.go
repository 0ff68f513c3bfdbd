// Command keydbench measures keyd on this machine and writes Markdown tables.
//
//	keydbench http   JWKS requests per second and latency under wrk, next to nginx serving
//	                 the same bytes; keyd's peak memory; SIGUSR1 to the new kid being
//	                 served; start-up time to ready
//	keydbench scale  one keyd with many keysets: start-up time, memory, a rotation sweep
//
// All traffic goes to 127.0.0.1, and every phase is bounded in count and time. Each
// command prints its tables and replaces its own section of the results file.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

// Commands stop after this long, whatever they were doing.
const runLimit = 15 * time.Minute

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: keydbench http|scale [flags]")
		os.Exit(2)
	}
	var run func([]string) (string, error)
	switch os.Args[1] {
	case "http":
		run = benchHTTP
	case "scale":
		run = benchScale
	default:
		fmt.Fprintf(os.Stderr, "keydbench: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}

	timer := time.AfterFunc(runLimit, func() {
		fmt.Fprintf(os.Stderr, "keydbench %s: stopped after %s\n", os.Args[1], runLimit)
		stopAll()
		os.Exit(1)
	})
	section, err := run(os.Args[2:])
	timer.Stop()
	stopAll()
	if err != nil {
		fmt.Fprintf(os.Stderr, "keydbench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	fmt.Print(section)
}

// common are the flags every command takes.
type common struct {
	keyd    string
	results string
	dir     string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.keyd, "keyd", "bin/keyd", "keyd binary to measure")
	fs.StringVar(&c.results, "results", "bench/results.md",
		"Markdown file whose section for this command is replaced (empty: print only)")
	fs.StringVar(&c.dir, "dir", "", "where keyd keeps its keys (default: a new temp dir)")
}

// workDir returns a new directory for one keyd's data, removed by stopAll.
func (c *common) workDir(name string) (string, error) {
	dir, err := os.MkdirTemp(c.dir, "keydbench-"+name+"-")
	if err != nil {
		return "", err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	return dir, nil
}

// cleanups run once, at exit or when runLimit strikes.
var cleanups []func()

func stopAll() {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}
