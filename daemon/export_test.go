package daemon

import "github.com/vfio-gate/vfio-gate/tdisp"

// Broker is the TDISP session owner Run drives (tests).
type Broker = broker

// WithBroker makes Run build its TDISP session owner with newBroker instead
// of tdisp.NewBroker (tests).
func WithBroker(c Config, newBroker func(tdisp.BrokerConfig) (Broker, error)) Config {
	c.newBroker = newBroker
	return c
}
