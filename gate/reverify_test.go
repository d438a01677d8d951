package gate_test

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/gate/evstore"
	"github.com/vfio-gate/vfio-gate/policy"
)

// TestReverify: a stored decision re-verifies offline and its policy
// allows it again; a policy the evidence fails denies it; evidence that
// does not decode is an error naming the bundle.
func TestReverify(t *testing.T) {
	w := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good"})
	store := evstore.Open(filepath.Join(w.dir, "state", "evidence"), evstore.Options{})
	ds := check(t, w.gate(func(o *gate.Options) { o.Evidence = store }), true, bdf(t, "0000:01:00.0"))
	b, err := store.Get(hex.EncodeToString(ds[0].EvidenceDigest))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rep, v, err := gate.Reverify(b, nil, nil, now)
	if err != nil || !rep.OK || v != nil {
		t.Fatalf("no policy: %+v %+v %v", rep, v, err)
	}
	if rep, v, err = gate.Reverify(b, nil, w.policy, now); err != nil || !rep.OK || v == nil || !v.Allow {
		t.Fatalf("the deciding policy: %+v %+v %v", rep, v, err)
	}
	pp := filepath.Join(w.dir, "strict.yaml")
	must(t, os.WriteFile(pp, []byte(fixturePolicy(policyOpts{minSVN: 99})), 0o600))
	strict, err := policy.Load(pp, &policy.LoadOptions{SkipPermissionCheck: true})
	must(t, err)
	if _, v, err = gate.Reverify(b, nil, strict, now); err != nil || v == nil || v.Allow {
		t.Fatalf("min_svn 99: %+v %v", v, err)
	}
	b.Evidence = []byte(`{"version":`)
	if _, _, err := gate.Reverify(b, nil, w.policy, now); err == nil || !strings.HasPrefix(err.Error(), "bundle "+b.Digest+": evidence: ") {
		t.Fatalf("broken evidence: %v", err)
	}
}
