package policy

// Test-only views of the code table.

// Codes returns the reason codes Evaluate gives (the README's table), in
// table order: every code except those gate adds around the evaluation.
func Codes() []Code {
	var cs []Code
	for _, r := range codeTable {
		switch r.code {
		case CodeNoDevice, CodeLock, CodeTPM:
			continue
		}
		cs = append(cs, r.code)
	}
	return cs
}

// AllCodes returns every code of the table.
func AllCodes() []Code {
	cs := make([]Code, 0, len(codeTable))
	for _, r := range codeTable {
		cs = append(cs, r.code)
	}
	return cs
}

// Advice returns the "what to do" sentence of code ("" for an unknown code).
func Advice(c Code) string {
	if r := rowOf(c); r != nil {
		return r.advice
	}
	return ""
}
