package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/vfio-gate/vfio-gate/internal/buildinfo"
)

// newGenDocsCmd writes the man pages (one per command, generated from the
// commands' own help) and the shell completions; scripts/package runs it.
func newGenDocsCmd(e *env, g *globals) *cobra.Command {
	var man, completions string
	c := &cobra.Command{
		Use:     "gen-docs",
		Short:   "Write man pages and shell completions (for packaging)",
		Hidden:  true,
		Long:    helpText("gen-docs.long"),
		Example: helpText("gen-docs.example"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			root := cmd.Root()
			if man != "" {
				date, err := buildinfo.SourceDate(e.getenv("SOURCE_DATE_EPOCH"), time.Now())
				if err != nil {
					return usageErrorf("SOURCE_DATE_EPOCH %q: %v", e.getenv("SOURCE_DATE_EPOCH"), err)
				}
				if err := os.MkdirAll(man, 0o755); err != nil {
					return err
				}
				root.DisableAutoGenTag = true
				hdr := &doc.GenManHeader{Title: "VFIO-GATE", Section: "1", Date: &date, Source: "vfio-gate " + strings.Fields(version())[0], Manual: "vfio-gate manual"}
				if err := doc.GenManTree(root, hdr, man); err != nil {
					return fmt.Errorf("gen-docs: man: %w", err)
				}
			}
			if completions != "" {
				if err := os.MkdirAll(completions, 0o755); err != nil {
					return err
				}
				for name, gen := range map[string]func(string) error{
					"vfio-gate.bash": func(p string) error { return root.GenBashCompletionFileV2(p, true) },
					"_vfio-gate":     root.GenZshCompletionFile,
					"vfio-gate.fish": func(p string) error { return root.GenFishCompletionFile(p, true) },
				} {
					if err := gen(filepath.Join(completions, name)); err != nil {
						return fmt.Errorf("gen-docs: completion %s: %w", name, err)
					}
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&man, "man", "", "directory for the man pages")
	c.Flags().StringVar(&completions, "completions", "", "directory for the shell completions")
	return c
}
