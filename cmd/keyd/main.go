// Command keyd creates, rotates and publishes JWT signing keys. See README.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "keyd:", err)
		os.Exit(1)
	}
}
