package cli

import "runtime/debug"

// BuildVersion returns Version, and for a development build the commit it
// was built from, as the Go toolchain recorded it ("dev+1a2b3c4d", with
// "-dirty" for uncommitted changes).
func BuildVersion() string {
	if Version != "dev" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return Version
	}
	return Version + "+" + rev[:min(len(rev), 12)] + dirty
}
