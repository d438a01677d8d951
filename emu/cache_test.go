package emu

import (
	"sync"
	"testing"
)

// chainCache shares generated chains between tests: RSA-4096 key generation
// takes about a second.
var chainCache sync.Map // key: chainKey → *Chain

type chainKey struct {
	k KeyType
	o ChainOptions
}

func testChain(t testing.TB, k KeyType, o ChainOptions) (*Chain, error) {
	t.Helper()
	if c, ok := chainCache.Load(chainKey{k, o}); ok {
		return c.(*Chain), nil
	}
	c, err := NewChain(k, o)
	if err == nil {
		chainCache.Store(chainKey{k, o}, c)
	}
	return c, err
}
