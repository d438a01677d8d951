package doe

import "fmt"

// Feature is a DOE data object protocol: the Vendor ID and Data Object Type
// of the data object header (PCIe r6.0 §6.30.1, SPEC-FACTS §1.4).
type Feature struct {
	Vendor uint16 `json:"vendor"`
	Type   uint8  `json:"type"`
}

// Vendor IDs of the data object protocols we know.
const (
	VendorPCISIG uint16 = 0x0001
	VendorCXL    uint16 = 0x1E98
)

// Well-known features.
var (
	// FeatureDiscovery is DOE Discovery (PCIe r6.0 §6.30.1.1).
	FeatureDiscovery = Feature{Vendor: VendorPCISIG, Type: 0x00}
	// FeatureCMA is CMA-SPDM: plain SPDM messages (PCIe r6.0 §6.31).
	FeatureCMA = Feature{Vendor: VendorPCISIG, Type: 0x01}
	// FeatureSecuredCMA is secured CMA-SPDM: DSP0277 secured messages.
	FeatureSecuredCMA = Feature{Vendor: VendorPCISIG, Type: 0x02}
	// FeatureCXLCompliance is CXL Compliance (CXL 2.0 §14.16.4).
	FeatureCXLCompliance = Feature{Vendor: VendorCXL, Type: 0x00}
	// FeatureCXLCDAT is CXL Table Access, used to read the CDAT.
	FeatureCXLCDAT = Feature{Vendor: VendorCXL, Type: 0x02}
)

// Name returns the short name used in scan output and JSON: "discovery",
// "cma-spdm", "secured-cma-spdm", "cxl-cdat", "cxl-compliance", otherwise
// "VVVV:TT" in lower-case hex (the name of the Linux sysfs doe_features file).
func (f Feature) Name() string {
	switch f {
	case FeatureDiscovery:
		return "discovery"
	case FeatureCMA:
		return "cma-spdm"
	case FeatureSecuredCMA:
		return "secured-cma-spdm"
	case FeatureCXLCDAT:
		return "cxl-cdat"
	case FeatureCXLCompliance:
		return "cxl-compliance"
	}
	return fmt.Sprintf("%04x:%02x", f.Vendor, f.Type)
}

// String is Name.
func (f Feature) String() string { return f.Name() }
