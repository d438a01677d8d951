package policy_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/policy"
)

// FuzzParse: the loader never panics, returns a policy iff no error, every
// error names the file, and any accepted policy evaluates without panicking
// and never allows a device with no CMA for a confidential VM unless the
// policy's confidential default allows unattested devices.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"version: 1\n",
		"version: 1\nmode: audit\ntpm: {pcr: 14}\ndefaults: {confidential: deny-unattested, non_confidential: allow-unattested}\n",
		"version: 1\niommu_group: {exempt_classes: [0x0604]}\nrules:\n  - name: a\n    match: {vendor: 0x1234, device: [1, 2], class: {value: 0x020000, mask: 0xff0000}, bdf: \"0000:3b:00.0\", dsn: \"00-11-22-33-44-55-66-77\"}\n",
		"version: 1\nrules:\n  - name: b\n    match: {subsystem_vendor: 1, subsystem_device: 2}\n    spdm: {min_version: \"1.2\", trust_anchors: [x.pem]}\n",
		"version: 1\nrules:\n  - name: c\n    match: {vendor: 1}\n    spdm: {trust_anchors: [/nonexistent]}\n    measurements: {require_signed: true, reference: {1: [\"sha256:00\"]}, min_svn: 3, forbid_debug_mode: true}\n    tdisp: {require_lock: true}\n",
		"version: 1\nx: &a 1\ny: *a\n",
		"version: 2\n",
		"- [",
		"version: 1\n---\n",
		"version: 1\nrules:\n  - {name: a, match: {vendor: 1}}\n  - {name: a, match: {vendor: 1}}\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	name := filepath.Join(dir, "policy.yaml")
	opts := &policy.LoadOptions{SkipPermissionCheck: true, Now: func() time.Time { return now }}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := policy.Parse(data, name, opts)
		if (p == nil) == (err == nil) {
			t.Fatalf("policy %v, error %v", p, err)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), name) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		_ = p.Explain()
		ev := &attest.Evidence{Identity: attest.Identity{VendorID: 1, DeviceID: 2}}
		v := p.Evaluate(ev, policy.Input{Confidential: true, Now: now})
		if v.Allow && p.Mode == policy.ModeEnforce && p.DefaultConfidential == policy.DenyUnattested {
			t.Fatalf("unattested device allowed for a confidential VM: %+v", v)
		}
	})
}
