package policy_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/policy"
)

func TestReadAnchorFiles(t *testing.T) {
	p := newPKI(t)
	both := filepath.Join(p.dir, "both.pem")
	a, _ := os.ReadFile(p.rootPEM)
	b, _ := os.ReadFile(p.otherPEM)
	if err := os.WriteFile(both, append(a, b...), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(p.dir)
	got, err := policy.ReadAnchorFiles([]string{"both.pem", p.rootPEM}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].File != both || got[1].File != both || got[2].File != p.rootPEM ||
		got[0].SHA256 != p.rootSHA || got[1].SHA256 != p.otherSHA || got[2].SHA256 != p.rootSHA || got[1].Cert == nil {
		t.Fatalf("anchors: %+v", got)
	}
	var ae *policy.AnchorFileError
	if _, err := policy.ReadAnchorFiles([]string{"missing.pem"}, 1<<20); !errors.As(err, &ae) || ae.Path != "missing.pem" || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile("junk.pem", []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := policy.ReadAnchorFiles([]string{"junk.pem"}, 1<<20); !errors.As(err, &ae) || ae.Path != "junk.pem" || !strings.HasPrefix(err.Error(), "junk.pem: ") {
		t.Fatalf("not a certificate: %v", err)
	}
	if _, err := policy.ReadAnchorFiles([]string{"both.pem"}, 10); !errors.As(err, &ae) {
		t.Fatalf("over the size limit: %v", err)
	}
}

// CaptureDocument → Parse: the header names the capture, and the document
// loads back to the captured rule, which allows the device.
func TestCaptureDocumentRoundTrip(t *testing.T) {
	p := newPKI(t)
	ev := p.goodEvidence()
	anchors, err := policy.ReadAnchorFiles([]string{p.rootPEM, p.otherPEM}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	doc, err := policy.CaptureDocument(ev, policy.CaptureOptions{Name: "nic", Anchors: anchors, ForbidDebugMode: true}, at)
	if err != nil {
		t.Fatal(err)
	}
	head := fmt.Sprintf("# vfio-gate policy capture, 2026-01-02T02:04:05Z\n# device 0000:3b:00.0 [1234:5678], CMA SAN %s\n# evidence digest %x\n",
		ev.Chains[0].CMASAN.Raw, ev.Digest())
	if !strings.HasPrefix(doc, head) {
		t.Fatalf("header: want prefix\n%s\ngot\n%s", head, doc)
	}
	r, _ := policy.Capture(ev, policy.CaptureOptions{Name: "nic", Anchors: anchors, ForbidDebugMode: true})
	if want := policy.MarshalDocument(nil, r); !strings.HasSuffix(doc, want) {
		t.Fatalf("body is not the captured rule:\n%s\nwant suffix\n%s", doc, want)
	}
	pol, err := policy.Parse([]byte(doc), filepath.Join(p.dir, "captured.yaml"), &policy.LoadOptions{SkipPermissionCheck: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if len(pol.Rules) != 1 || pol.Rules[0].Name != "nic" || len(pol.Rules[0].SPDM.Anchors) != 1 || pol.Rules[0].SPDM.Anchors[0].SHA256 != p.rootSHA {
		t.Fatalf("parsed: %+v", pol.Rules)
	}
	if v := pol.Evaluate(ev, policy.Input{Confidential: true, Now: now}); !v.Allow {
		t.Fatalf("the captured document denies its device: %+v", v.Reasons)
	}
	sock := p.goodEvidence()
	sock.Identity.BDF, sock.Identity.Socket = "", "127.0.0.1:2323"
	if doc, err := policy.CaptureDocument(sock, policy.CaptureOptions{Anchors: anchors}, at); err != nil || !strings.Contains(doc, "\n# spdm-socket 127.0.0.1:2323 [1234:5678], CMA SAN ") {
		t.Fatalf("socket device: %v\n%s", err, doc)
	}
	bad := p.goodEvidence()
	bad.Chains = nil
	if _, err := policy.CaptureDocument(bad, policy.CaptureOptions{Anchors: anchors}, at); err == nil {
		t.Fatal("a device without a verified chain was captured")
	}
}
