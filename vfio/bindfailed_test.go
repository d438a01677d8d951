package vfio_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vfio-gate/vfio-gate/vfio"
)

func TestBindFailed(t *testing.T) {
	for _, err := range []error{
		&vfio.BindError{Step: vfio.StepProbe, Err: errors.New("x")},
		fmt.Errorf("bind: %w", &vfio.GroupError{Group: 3}),
		errors.Join(errors.New("other"), vfio.ErrNoIOMMU),
		vfio.ErrGroupNotViable, vfio.ErrAlreadyBound, vfio.ErrNoVFIODriver,
		fmt.Errorf("wrapped: %w", vfio.ErrNotBound), vfio.ErrStateChanged, vfio.ErrTimeout,
	} {
		if !vfio.BindFailed(err) {
			t.Errorf("BindFailed(%v) = false", err)
		}
	}
	for _, err := range []error{nil, errors.New("vfio: something else"), vfio.ErrNoDevice, vfio.ErrBadDriverName} {
		if vfio.BindFailed(err) {
			t.Errorf("BindFailed(%v) = true", err)
		}
	}
}
