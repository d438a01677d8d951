package emu

func transports() map[string]transportFunc {
	return map[string]transportFunc{"doe": overDOE}
}
