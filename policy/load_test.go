package policy_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/policy"
)

func TestLoadErrorsCarryLines(t *testing.T) {
	p := newPKI(t)
	anchor := p.rootPEM
	garbage := filepath.Join(p.dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key := p.writePEM("key.pem", "EC PRIVATE KEY", []byte{1, 2, 3})
	rule := func(body string) string {
		return "version: 1\nrules:\n  - name: r\n    match: {vendor: 0x1234}\n" + body
	}
	cases := []struct {
		name, text string
		line       int
		msg        string
	}{
		{"empty", "", 0, "empty policy file"},
		// yaml.v3 reports an unclosed flow list at the line before its start (its context mark).
		{"syntax", "version: 1\nmode: [enforce\n", 1, "did not find expected"},
		{"syntax tab", "version: 1\nrules:\n\t- x\n", 3, "cannot start any token"},
		{"not a mapping", "- 1\n", 1, "must be a mapping"},
		{"missing version", "mode: enforce\n", 1, "missing \"version: 1\""},
		{"version 2", "version: 2\n", 1, "unsupported policy version 2"},
		{"version string", "version: \"1\"\n", 1, "want an unsigned integer"},
		{"unknown top key", "version: 1\nmodes: audit\n", 2, `unknown key "modes"`},
		{"bad mode", "version: 1\nmode: relaxed\n", 2, `mode "relaxed"`},
		{"duplicate key", "version: 1\nmode: audit\nmode: enforce\n", 3, "duplicate key \"mode\""},
		{"pcr range", "version: 1\ntpm: {pcr: 24}\n", 2, "tpm.pcr 24"},
		{"pcr type", "version: 1\ntpm: {pcr: ten}\n", 2, "want an unsigned integer"},
		{"bad default", "version: 1\ndefaults: {confidential: allow}\n", 2, `"allow": want deny-unattested`},
		{"unknown default key", "version: 1\ndefaults:\n  confidental: deny-unattested\n", 3, `unknown key "confidental"`},
		{"exempt class too big", "version: 1\niommu_group: {exempt_classes: [0x60400]}\n", 2, "16-bit"},
		{"alias", "version: 1\nx: &a 1\n", 2, "anchors and aliases"},
		{"two documents", "version: 1\n---\nversion: 1\n", 2, "more than one YAML document"},
		{"rule not mapping", "version: 1\nrules: [3]\n", 2, "want a mapping"},
		{"rule without name", "version: 1\nrules:\n  - match: {vendor: 1}\n", 3, "rule without a name"},
		{"bad rule name", "version: 1\nrules:\n  - {name: \"a b\", match: {vendor: 1}}\n", 3, "rule name \"a b\""},
		{"duplicate rule", "version: 1\nrules:\n  - {name: a, match: {vendor: 1}}\n  - {name: a, match: {vendor: 2}}\n", 4, "already used at line 3"},
		{"no match", "version: 1\nrules:\n  - name: a\n", 3, "has no match"},
		{"empty match", "version: 1\nrules:\n  - name: a\n    match: {}\n", 4, "empty match"},
		{"unknown match key", rule("") + "    spdm: {trust_anchors: [" + anchor + "]}\n" + "    tdisp: {require_lock: yes}\n", 6, "want true or false"},
		{"vendor too big", "version: 1\nrules:\n  - name: a\n    match: {vendor: 0x12345}\n", 4, "16-bit"},
		{"vendor negative", "version: 1\nrules:\n  - name: a\n    match: {vendor: -1}\n", 4, "16-bit"},
		{"device empty list", "version: 1\nrules:\n  - name: a\n    match: {vendor: 1, device: []}\n", 4, "empty list"},
		{"class mask", "version: 1\nrules:\n  - name: a\n    match: {class: {value: 0x030001, mask: 0xff0000}}\n", 4, "outside mask"},
		{"class without value", "version: 1\nrules:\n  - name: a\n    match: {class: {mask: 0xff0000}}\n", 4, "needs a value"},
		{"bad bdf", "version: 1\nrules:\n  - name: a\n    match: {bdf: \"3b:00.0\"}\n", 4, "want dddd:bb:dd.f"},
		{"bdf device 32", "version: 1\nrules:\n  - name: a\n    match: {bdf: \"0000:3b:20.0\"}\n", 4, "device must be"},
		{"bad dsn", "version: 1\nrules:\n  - name: a\n    match: {dsn: \"00-11\"}\n", 4, "8 hex bytes"},
		{"measurements without spdm", rule("    measurements: {min_svn: 1}\n"), 3, "no spdm section"},
		{"spdm without anchors", rule("    spdm: {min_version: \"1.2\"}\n"), 5, "at least one trust_anchors"},
		{"min_version bad", rule("    spdm:\n      min_version: \"2\"\n      trust_anchors: [" + anchor + "]\n"), 6, "spdm.min_version"},
		{"unknown asym", rule("    spdm:\n      algorithms: {asym: [ecdsa-p385]}\n      trust_anchors: [" + anchor + "]\n"), 6, `unknown algorithm "ecdsa-p385"`},
		{"empty hash list", rule("    spdm:\n      algorithms: {hash: []}\n      trust_anchors: [" + anchor + "]\n"), 6, "is empty"},
		{"missing anchor file", rule("    spdm:\n      trust_anchors:\n        - missing.pem\n"), 7, "no such file"},
		{"garbage anchor", rule("    spdm:\n      trust_anchors:\n        - " + garbage + "\n"), 7, "trust anchor"},
		{"key in anchor file", rule("    spdm:\n      trust_anchors:\n        - " + key + "\n"), 7, `PEM block "EC PRIVATE KEY"`},
		{"anchor listed twice", rule("    spdm:\n      trust_anchors:\n        - " + anchor + "\n        - root.pem\n"), 8, "already listed at line 7"},
		{"crl missing", rule("    spdm:\n      trust_anchors: [" + anchor + "]\n      crls:\n        - nope.crl\n"), 8, "CRL"},
		{"reference index 0", rule("    spdm: {trust_anchors: [" + anchor + "]}\n    measurements:\n      reference:\n        0: [\"sha256:00\"]\n"), 8, "want 1..254"},
		{"reference bad digest", rule("    spdm: {trust_anchors: [" + anchor + "]}\n    measurements:\n      reference:\n        1: [\"sha384:abcd\"]\n"), 8, "want 96 hex digits"},
		{"reference bad alg", rule("    spdm: {trust_anchors: [" + anchor + "]}\n    measurements:\n      reference:\n        1: [\"md5:abcd\"]\n"), 8, "ALG:HEX"},
		{"reference twice", rule("    spdm: {trust_anchors: [" + anchor + "]}\n    measurements:\n      reference:\n        1: [\"sha256:" + strings.Repeat("00", 32) + "\"]\n        0x01: [\"sha256:" + strings.Repeat("00", 32) + "\"]\n"), 9, "listed twice"},
		{"min_svn string", rule("    spdm: {trust_anchors: [" + anchor + "]}\n    measurements: {min_svn: \"7\"}\n"), 6, "want an unsigned integer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := p.load(c.text)
			if err == nil {
				t.Fatalf("loaded:\n%s", c.text)
			}
			path := filepath.Join(p.dir, "policy.yaml")
			prefix := path + ":"
			if c.line > 0 {
				prefix = fmt.Sprintf("%s:%d:", path, c.line)
			}
			if !strings.Contains(err.Error(), prefix) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q\nwant prefix %q and %q", err, prefix, c.msg)
			}
			var pe *policy.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *policy.Error", err)
			}
		})
	}
}

func TestEmptyListsAndNoRules(t *testing.T) {
	p := newPKI(t)
	pol := p.mustLoad("version: 1\nrules:\niommu_group: {exempt_classes: []}\n")
	if len(pol.Rules) != 0 || len(pol.ExemptClasses) != 0 {
		t.Fatalf("%+v", pol)
	}
	if _, err := p.load("version: 1\nrules:\n  - name: r\n    match: {vendor: 1}\n    spdm: {trust_anchors:}\n"); err == nil ||
		!strings.Contains(err.Error(), "policy.yaml:5:") || !strings.Contains(err.Error(), "at least one trust_anchors") {
		t.Fatalf("null anchors: %v", err)
	}
}

func TestLoadReportsSeveralErrors(t *testing.T) {
	p := newPKI(t)
	_, err := p.load("version: 1\nmode: x\ntpm: {pcr: 99}\nfoo: 1\n")
	if err == nil {
		t.Fatal("loaded")
	}
	for _, want := range []string{"policy.yaml:2:", "policy.yaml:3:", "policy.yaml:4:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}

func TestLoadDefaultsAndWarnings(t *testing.T) {
	p := newPKI(t)
	pol := p.mustLoad(fmt.Sprintf(`version: 1
tpm: {pcr: 16}
defaults: {confidential: allow-unattested}
rules:
  - name: r
    match: {device: 0x5678}
    spdm:
      min_version: 1.2
      trust_anchors: [%s]
      crls: [%s]
    measurements: {min_svn: 3}
`, p.rootPEM, p.crl("old.crl", p.root, now.AddDate(0, 0, -9), now.AddDate(0, 0, -2))))
	if pol.Mode != policy.ModeEnforce || pol.DefaultNonConfidential != policy.DenyUnattested {
		t.Errorf("defaults: mode %s non_confidential %s", pol.Mode, pol.DefaultNonConfidential)
	}
	if pol.Rules[0].SPDM.MinVersion != "1.2" || pol.Rules[0].SPDM.CRLs[0].SignedBy != p.rootSHA {
		t.Errorf("spdm: %+v", pol.Rules[0].SPDM)
	}
	var ws []string
	for _, w := range pol.Warnings {
		ws = append(ws, fmt.Sprintf("%d:%s", w.Line, w.Message))
	}
	all := strings.Join(ws, "\n")
	for _, want := range []string{"2:tpm.pcr 16 is resettable", "3:defaults.confidential is allow-unattested",
		"6:rule \"r\" matches device IDs without a vendor", "10:CRL", "past its nextUpdate", "11:rule \"r\" checks measurements without require_signed"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
	if pol.Version != 1 || pol.PCR != 16 {
		t.Errorf("version %d pcr %d", pol.Version, pol.PCR)
	}
}

func TestCRLSignedByWrongKeyIsRefused(t *testing.T) {
	p := newPKI(t)
	forged := p.crl("forged.crl", certKey{cert: p.root.cert, key: p.inter.key}, now.Add(-1), now.AddDate(0, 0, 1))
	_, err := p.load(fmt.Sprintf("version: 1\nrules:\n  - name: r\n    match: {vendor: 1}\n    spdm:\n      trust_anchors: [%s]\n      crls: [%s]\n", p.rootPEM, forged))
	if err == nil || !strings.Contains(err.Error(), "policy.yaml:7:") || !strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("forged CRL: %v", err)
	}
}

func TestDERAnchorAndCRL(t *testing.T) {
	p := newPKI(t)
	der := filepath.Join(p.dir, "root.der")
	if err := os.WriteFile(der, p.root.cert.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	pol := p.mustLoad("version: 1\nrules:\n  - name: r\n    match: {vendor: 1}\n    spdm: {trust_anchors: [root.der]}\n")
	if a := pol.Rules[0].SPDM.Anchors[0]; a.SHA256 != p.rootSHA || a.File != der {
		t.Errorf("anchor %+v", a)
	}
}

func TestLibvirtSection(t *testing.T) {
	p := newPKI(t)
	pol := p.mustLoad("version: 1\n")
	if pol.Libvirt.Hotplug != policy.HotplugReport || !pol.Libvirt.RecordTDISPExit {
		t.Fatalf("defaults: %+v", pol.Libvirt)
	}
	pol = p.mustLoad("version: 1\nlibvirt: {hotplug: detach, record_tdisp_exit: false}\n")
	if pol.Libvirt.Hotplug != policy.HotplugDetach || pol.Libvirt.RecordTDISPExit {
		t.Fatalf("set: %+v", pol.Libvirt)
	}
	for text, want := range map[string]string{
		"version: 1\nlibvirt: {hotplug: ignore}\n":              `libvirt.hotplug "ignore"`,
		"version: 1\nlibvirt: {hotplugs: detach}\n":             `unknown key "hotplugs"`,
		"version: 1\nlibvirt: {record_tdisp_exit: 1}\n":         "want true or false",
		"version: 1\nlibvirt: {confidential_types: [CCA]}\n":    `"CCA" is not a launchSecurity type name`,
		"version: 1\nlibvirt: {confidential_types: {cca: 1}}\n": "want a list",
	} {
		if _, err := p.load(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}

// TestLibvirtConfidentialTypes: built-in launchSecurity types are
// confidential, listed ones too, and any other is unknown (refused by the
// daemon); listing a built-in or a type twice is a warning.
func TestLibvirtConfidentialTypes(t *testing.T) {
	p := newPKI(t)
	pol := p.mustLoad("version: 1\nlibvirt: {confidential_types: [cca, sev, cca, arm-rme_2]}\n")
	if got := pol.Libvirt.ConfidentialTypes; strings.Join(got, ",") != "cca,arm-rme_2" {
		t.Fatalf("ConfidentialTypes %q", got)
	}
	var warns []string
	for _, w := range pol.Warnings {
		warns = append(warns, w.Message)
	}
	if len(warns) != 2 || !strings.Contains(warns[0], `"sev" is always confidential`) || !strings.Contains(warns[1], `"cca" is listed twice`) {
		t.Fatalf("warnings %q", warns)
	}
	for _, c := range []struct {
		ls             string
		conf, known    bool
		withoutListing bool // known without the policy's list
	}{
		{"", false, true, true}, {"sev", true, true, true}, {"sev-snp", true, true, true}, {"tdx", true, true, true},
		{"s390-pv", true, true, true}, {"cca", true, true, false}, {"arm-rme_2", true, true, false}, {"future", false, false, false},
	} {
		conf, known := pol.Libvirt.Confidential(c.ls)
		if conf != c.conf || known != c.known {
			t.Errorf("%q: confidential %v known %v, want %v %v", c.ls, conf, known, c.conf, c.known)
		}
		if _, known := (policy.Libvirt{}).Confidential(c.ls); known != c.withoutListing {
			t.Errorf("%q without the list: known %v", c.ls, known)
		}
	}
}

// TestLibvirtConfidentialDomains: libvirt.confidential_domains keeps the
// names in order (a repeat is a warning) and refuses what cannot be a
// libvirt domain name.
func TestLibvirtConfidentialDomains(t *testing.T) {
	p := newPKI(t)
	pol := p.mustLoad("version: 1\nlibvirt: {confidential_domains: [cvm1, \"vm two\", cvm1]}\n")
	if got := pol.Libvirt.ConfidentialDomains; strings.Join(got, ",") != "cvm1,vm two" {
		t.Fatalf("ConfidentialDomains %q", got)
	}
	if len(pol.Warnings) != 1 || !strings.Contains(pol.Warnings[0].Message, `"cvm1" is listed twice`) {
		t.Fatalf("warnings %+v", pol.Warnings)
	}
	for text, want := range map[string]string{
		"version: 1\nlibvirt: {confidential_domains: [\"\"]}\n":       "is not a libvirt domain name",
		"version: 1\nlibvirt: {confidential_domains: [a/b]}\n":        "is not a libvirt domain name",
		"version: 1\nlibvirt: {confidential_domains: [\"a\\x01\"]}\n": "is not a libvirt domain name",
		"version: 1\nlibvirt: {confidential_domains: {cvm1: 1}}\n":    "want a list",
	} {
		if _, err := p.load(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}
