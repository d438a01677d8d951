package testutil

import "errors"

// TPM2Tools: Debian's tpm2-tools (tpm2_eventlog, tpm2_checkquote), the
// independent checkers of vfio-gate's evidence exports.
var TPM2Tools = Cap{Name: "tpm2-tools", Hint: "install it: bash scripts/install-deps (apt-get install tpm2-tools)", Probe: func() error {
	return errors.Join(lookPath("tpm2_eventlog"), lookPath("tpm2_checkquote"))
}}
