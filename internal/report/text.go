package report

// dash is s, or "-" when s is empty (a table cell that has no value).
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// short is s cut to n bytes with "..." when longer, or "-" when empty.
func short(s string, n int) string {
	if s == "" {
		return "-"
	}
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}
