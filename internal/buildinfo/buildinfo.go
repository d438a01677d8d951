package buildinfo

import (
	"runtime/debug"
	"strconv"
	"time"
)

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

// Current is Version of the running binary: its build info
// (debug.ReadBuildInfo) under the stamps stampV and stampC.
func Current(stampV, stampC string) string {
	bi, ok := debug.ReadBuildInfo()
	return Version(stampV, stampC, bi, ok)
}

// SourceDate is the date a reproducible build stamps into what it
// generates (man pages): epoch, the value of SOURCE_DATE_EPOCH (seconds
// since 1970, reproducible-builds.org), when set, else now; in UTC. An
// epoch that is not a number is strconv's error.
func SourceDate(epoch string, now time.Time) (time.Time, error) {
	if epoch == "" {
		return now.UTC(), nil
	}
	n, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(n, 0).UTC(), nil
}
