package buildinfo

import "runtime/debug"

// Version is "VERSION COMMIT GOVERSION": the stamped version and commit
// when set (stampV, stampC), else the module version and the VCS revision
// (cut to 12 hex digits) of the build info bi; ok is debug.ReadBuildInfo's.
// A missing version reads "(unknown)"; a missing commit or Go version is
// left out.
func Version(stampV, stampC string, bi *debug.BuildInfo, ok bool) string {
	if !ok {
		bi = &debug.BuildInfo{}
	}
	v, commit := bi.Main.Version, ""
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			commit = s.Value
		}
	}
	if stampV != "" {
		v = stampV
	}
	if stampC != "" {
		commit = stampC
	}
	if v == "" {
		v = "(unknown)"
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	out := v
	if commit != "" {
		out += " " + commit
	}
	if bi.GoVersion != "" {
		out += " " + bi.GoVersion
	}
	return out
}
