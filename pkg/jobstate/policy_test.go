package jobstate_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/jobstate"
)

func TestSuccessPolicyIndexesAndCount(t *testing.T) {
	t.Parallel()
	spec := jobstate.Spec{SuccessPolicy: []jobstate.SuccessRule{
		{SucceededIndexes: "5-9,20"},
		{SucceededIndexes: "0-2,8-12"},
		{SucceededCount: jobstate.Ptr(4)},
	}}
	require.Equal(t, "0-2,5-12,20", spec.SuccessPolicyIndexes())
	require.Empty(t, jobstate.Spec{SuccessPolicy: []jobstate.SuccessRule{{SucceededCount: jobstate.Ptr(1)}}}.SuccessPolicyIndexes())

	// Only the indexes within the rules were read; the count says 4
	// completed in all, which meets the rule with a count and no indexes.
	rule, ok := spec.SuccessPolicyMetCount("0,20", 4)
	require.True(t, ok)
	require.Equal(t, "count=4", rule)
	_, ok = spec.SuccessPolicyMetCount("0,20", 3)
	require.False(t, ok)
	rule, ok = spec.SuccessPolicyMetCount("0-2,5-9,20", 8)
	require.True(t, ok)
	require.Equal(t, "indexes=5-9,20", rule)
}
