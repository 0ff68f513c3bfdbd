// Package interop proves that keys made by keyd work in JWT libraries that share no code
// with it. Its tests start the built keyd, sign tokens with <dir>/<keyset>/current.pem in
// each library and verify every token in every library against the JWKS that keyd serves.
//
// The libraries: jose (Node.js, in node/), PyJWT and jwcrypto (Debian's python3-jwt and
// python3-jwcrypto, run with /usr/bin/python3) and go-jose. INSTALL.sh installs what a
// fresh machine lacks; a missing library fails the tests, it never skips them.
package interop
