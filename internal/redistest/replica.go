package redistest

import (
	"context"
	"fmt"
	"time"
)

// WaitReplica waits until the data server at addr is a replica whose link
// to its primary is up and in sync, such as a killed primary that was
// started again and that the Sentinels turned into a replica of the one
// they promoted. It returns the address of that primary.
func (st *Sentinel) WaitReplica(ctx context.Context, addr string) (string, error) {
	var last string
	for {
		info, err := doString(addr, "INFO", "replication")
		switch {
		case err != nil:
			last = err.Error()
		case infoField(info, "role") != "slave":
			last = "role " + infoField(info, "role")
		case infoField(info, "master_link_status") != "up" || infoField(info, "master_sync_in_progress") != "0":
			last = fmt.Sprintf("link %s, sync in progress %s", infoField(info, "master_link_status"), infoField(info, "master_sync_in_progress"))
		default:
			return infoField(info, "master_host") + ":" + infoField(info, "master_port"), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s is not an in-sync replica: %w; last: %s", addr, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Server returns the data server (primary or replica) at addr, or nil.
func (st *Sentinel) Server(addr string) *Server {
	for _, s := range st.Data {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}
