// Package cdat reads a CXL device's Coherent Device Attribute Table (CDAT)
// through the DOE "CXL Table Access" feature (vendor 0x1E98, type 2; CXL 2.0
// §8.1.11) and checks it (CDAT spec rev 1.02: header, checksum, structures).
//
// The device is untrusted: every handle, length and code it returns is
// checked, the read loop is bounded, and the table is rejected unless its
// header length, checksum and structure lengths all agree.
package cdat
