// Command vault builds the real HashiCorp Vault server from its Go module so that
// keyd's tests can run against it. It is a separate module so that keyd itself
// never depends on Vault's server code.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
