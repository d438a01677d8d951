package tpm

// SelectBoots returns the boots of dir a reader asked for: every boot
// (all), else boot seq (0: the newest), as FindBoot finds it. Nothing
// logged and seq 0 is no boot and no error.
func SelectBoots(dir string, seq int, all bool) ([]Boot, error) {
	boots, err := ListBoots(dir)
	if err != nil {
		return nil, err
	}
	if all || len(boots) == 0 && seq == 0 {
		return boots, nil
	}
	b, err := FindBoot(dir, seq)
	if err != nil {
		return nil, err
	}
	return []Boot{*b}, nil
}
