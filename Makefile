# keyd's build, test and benchmark entry points. `make test` is what CI runs.
GO        ?= go
BIN       := bin
VAULT_BIN := $(BIN)/vault
PKGS      := ./...

.PHONY: all build run test vault bench bench-go bench-http bench-scale fuzz soak clean

all: build

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/keyd ./cmd/keyd

# Run keyd on its built-in defaults (./keyd-data, 127.0.0.1:8080).
run:
	$(GO) run ./cmd/keyd

# Every test, including the end-to-end ones against the built keyd binary and a real
# Vault server built from source into bin/vault, then a short run of every fuzz target.
test: vault
	KEYD_VAULT_BIN=$(CURDIR)/$(VAULT_BIN) $(GO) test -count=1 -timeout 40m $(PKGS)
	$(MAKE) --no-print-directory fuzz FUZZTIME=5s

# The real HashiCorp Vault server, built from its Go module in tools/vault (a separate
# module, so keyd itself never depends on Vault's server code). The first build takes
# 15-20 minutes on two cores; later builds come from the Go build cache.
vault: $(VAULT_BIN)

$(VAULT_BIN): tools/vault/go.mod tools/vault/go.sum tools/vault/main.go
	cd tools/vault && $(GO) build -o $(CURDIR)/$(VAULT_BIN) .

# Go benchmarks, then the HTTP and scale figures of bench/ (written to bench/results.md).
bench: bench-go bench-http bench-scale

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# JWKS under wrk next to nginx, rotation and start-up latency (needs bench/INSTALL.sh).
bench-http:
	bench/http.sh

# One keyd with 1,000 keysets: start-up, memory, a rotation sweep.
bench-scale:
	bench/scale.sh

# Coverage-guided fuzzing of every parser of untrusted input, FUZZTIME each.
FUZZTIME ?= 30s
FUZZ_TARGETS := FuzzParse:./config FuzzDecode:./rotation FuzzParsePrivateJWK:./keys \
	FuzzAdminRequest:./daemon
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "== $${t%%:*}"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) $${t#*:} || exit 1; \
	done

# The long reliability runs: 200 SIGKILLs during rotation, and 5 minutes of fuzzing per
# parser.
soak: vault
	KEYD_CRASH_KILLS=200 KEYD_VAULT_BIN=$(CURDIR)/$(VAULT_BIN) \
		$(GO) test -count=1 -timeout 60m -run 'Crash' -v ./... 2>&1 | grep -E '^(---|===|ok|FAIL|\s+\S+_test.go)'
	$(MAKE) fuzz FUZZTIME=5m

clean:
	rm -rf $(BIN)
