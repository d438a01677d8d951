package spdm

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// refFile is one recorded connection from testdata/spdm-ref (see its README).
type refFile struct {
	Name        string            `json:"name"`
	Config      map[string]any    `json:"config"`
	Anchor      string            `json:"anchor"`
	AnchorSlot1 string            `json:"anchor_slot1"`
	Messages    []refMessage      `json:"messages"`
	Sessions    []json.RawMessage `json:"sessions"`
}

type refMessage struct {
	Dir       string `json:"dir"`
	DOEType   int    `json:"doe_type"`
	Hex       string `json:"hex"`
	SPDMCode  string `json:"spdm_code"`
	SPDMName  string `json:"spdm_name"`
	SPDMLen   int    `json:"spdm_len"`
	Decrypted *struct {
		SPDMHex  string `json:"spdm_hex"`
		SPDMName string `json:"spdm_name"`
	} `json:"decrypted"`
}

// doe returns the DOE payload (header stripped, padding kept).
func (m refMessage) doe(t testing.TB) []byte {
	b, err := hex.DecodeString(m.Hex)
	if err != nil || len(b) < 8 {
		t.Fatalf("bad hex in vector: %v", err)
	}
	return b[8:]
}

// spdm returns the exact SPDM message (plain or decrypted), nil for discovery.
func (m refMessage) spdm(t testing.TB) []byte {
	switch m.DOEType {
	case 1:
		return m.doe(t)[:m.SPDMLen]
	case 2:
		if m.Decrypted == nil {
			return nil
		}
		b, err := hex.DecodeString(m.Decrypted.SPDMHex)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return nil
}

func (m refMessage) name() string {
	if m.DOEType == 2 && m.Decrypted != nil {
		return m.Decrypted.SPDMName
	}
	return m.SPDMName
}

var refFiles = []string{"v11-p256", "v12-p384", "v12-p384-onebyone", "v13-p384", "v12-rsapss3072", "v12-keyex", "v12-keyex-hs-enc"}

func loadRef(t testing.TB, name string) *refFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "spdm-ref", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var f refFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

func loadDER(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "spdm-ref", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
