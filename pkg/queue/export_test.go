package queue

import "time"

// SetSettleGap changes how far apart w's settle calls are kept.
func SetSettleGap(w *Worker, d time.Duration) { w.settleGap = d }
