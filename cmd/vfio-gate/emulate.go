package main

import (
	"fmt"
	"net"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/emu"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
)

func newEmulateCmd(e *env, g *globals) *cobra.Command {
	var o emu.Settings
	cmd := &cobra.Command{
		Use:     "emulate --listen HOST:PORT [--profile NAME] [--write-ca FILE]",
		Short:   "Serve the software CMA/SPDM device over the spdm-socket protocol",
		Long:    helpText("emulate.long", "profiles", strings.ReplaceAll(emu.ProfileNames(), "|", ", ")),
		Example: helpText("emulate.example"),
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runEmulate(cmd, e, g, &o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.Listen, "listen", "", "TCP address to serve spdm-socket on, e.g. 127.0.0.1:2323 (port 0 picks one)")
	f.StringVar(&o.Profile, "profile", "good", "device personality: "+emu.ProfileNames())
	f.StringVar(&o.WriteCA, "write-ca", "", "write the root CA certificates (PEM) here instead of a temporary file")
	f.StringVar(&o.Algorithms, "algorithms", "", "comma-separated signature algorithms (e.g. ecdsa-p384,rsapss-3072); default all")
	f.StringVar(&o.Versions, "versions", "", "comma-separated SPDM versions offered (e.g. 1.2,1.3); default 1.0-1.3")
	f.DurationVar(&o.Latency, "latency", 0, "delay every response by this much")
	f.IntVar(&o.Slots, "slots", 1, "number of provisioned certificate slots (1-8)")
	f.StringVar(&o.AEAD, "aead", "", "secure sessions: the only AEAD the device selects (aes-128-gcm, aes-256-gcm, chacha20-poly1305); default: prefers aes-256-gcm")
	f.BoolVar(&o.HandshakeInClear, "handshake-in-clear", false, "secure sessions: advertise HANDSHAKE_IN_THE_CLEAR_CAP")
	f.Uint8Var(&o.Heartbeat, "heartbeat", 0, fmt.Sprintf("secure sessions: HeartbeatPeriod in seconds announced in KEY_EXCHANGE_RSP (0 = %d)", emu.DefaultHeartbeatPeriod))
	f.BoolVar(&o.NoHeartbeat, "no-heartbeat", false, "secure sessions: do not advertise HBEAT_CAP (HEARTBEAT is then unsupported)")
	f.BoolVar(&o.NoKeyUpdate, "no-key-update", false, "secure sessions: do not advertise KEY_UPD_CAP (KEY_UPDATE is then unsupported)")
	f.StringVar(&o.PKIDir, "pki", "", "serve operator-supplied keys and chains from DIR, in DMTF's sample-key layout (<alg>/end_responder.key, <alg>/bundle_responder.certchain[N].der; PEM or DER)")
	f.StringVar(&o.KeyFile, "key", "", "with --chain: the leaf private key (PEM or DER) of an operator-supplied slot-0 chain")
	f.StringVar(&o.ChainFile, "chain", "", "with --key: the certificate chain (PEM or concatenated DER, root first or leaf first)")
	f.BoolVar(&o.PublicKeyOnly, "public-key-only", false, "present the keys as pre-provisioned public keys (PUB_KEY_ID_CAP, slot 0xFF; SPDM 1.1+) instead of certificate chains")
	f.StringVar(&o.WritePublicKey, "write-public-key", "", "with --public-key-only: write the device's public keys (PEM SubjectPublicKeyInfo) here instead of a temporary file")
	f.StringVar(&o.MultiKey, "multi-key", "", "advertise SPDM 1.3 MULTI_KEY_CAP: only (01b, every 1.3 connection is multi-key) or negotiated (10b, when the requester asks)")
	f.StringVar(&o.BDF, "bdf", "0000:00:00.0", "the address the function pretends to have (its TDISP interface ID; tdisp --interface)")
	f.StringVar(&o.Identity, "identity", "", "the function's IDs, as they go into the leaf's CMA SAN: comma-separated KEY=VALUE (hex) of vendor, device, class, rev, subsystem (SSSS:SSSS), dsn (or dsn=none); unnamed keys keep the default "+emu.DefaultIdentity.CMAName()+"; \"qemu-nvme\" = QEMU's NVMe function (no DSN)")
	return cmd
}

// runEmulate builds the device (o.Device; every error is a usage error),
// writes its anchors (or public keys), prints the start-up banner and serves
// until interrupted.
func runEmulate(cmd *cobra.Command, e *env, g *globals, o *emu.Settings) error {
	if o.Listen == "" {
		return usageErrorf("emulate: --listen HOST:PORT is required")
	}
	o.SlotsSet, o.Logger = cmd.Flags().Changed("slots"), g.log
	dev, cfg, err := o.Device()
	if err != nil {
		return usageErrorf("%v", err)
	}
	caPath, pubPath, err := o.WriteFiles(dev)
	if err != nil {
		return err
	}
	ln, err := (&net.ListenConfig{}).Listen(cmd.Context(), "tcp", o.Listen)
	if err != nil {
		return withCode(exitUnavailable, fmt.Errorf("emulate: %w", err))
	}
	banner := rpt.EmulateBanner(dev, cfg, *o, ln.Addr().String(), caPath, pubPath)
	if err := g.write(e, "emulate", banner, banner.WriteText); err != nil {
		ln.Close()
		return err
	}
	if err := dev.Serve(cmd.Context(), ln, g.log); err != nil {
		return withCode(exitUnavailable, fmt.Errorf("emulate: %w", err))
	}
	return nil
}
