// Package web serves workq's dashboard and its JSON API over HTTP.
//
// Pages: GET / lists the Jobs; GET /jobs/{name} shows one Job with its
// progress, counts, a live throughput chart, its workers, dead items,
// conditions and spec. The pages are rendered on the server, so they work
// without JavaScript (they reload every few seconds); with it, the Job page
// follows a stream of server-sent events and draws the chart from the
// samples it collects. Every asset is embedded: nothing is loaded from
// another origin.
//
// API (JSON):
//
//	GET    /api/jobs                     every Job's status
//	GET    /api/jobs/{name}              status, workers and the first 100 dead items
//	GET    /api/jobs/{name}/events       text/event-stream: one "status" event per second
//	POST   /api/jobs/{name}/suspend      }
//	POST   /api/jobs/{name}/resume       } only with Options.Token and an
//	POST   /api/jobs/{name}/retry        } "Authorization: Bearer <token>" header
//	DELETE /api/jobs/{name}              }
//
// Retry puts the dead items back; a finished Job (Complete, Failed, or on
// its way there) refuses it with 409 unless the request says
// ?reopen=true, which reopens the Job as `coordinator retry --reopen` does.
//
// Without a token the server is read-only and the changing endpoints answer
// 403. Job names in URLs are checked with jobstate.ValidateName before Redis
// is asked. Errors are JSON objects {"error": "...", "hint": "..."}.
//
// Mount it as the root of a mux that also serves /metrics and /healthz:
//
//	mux.Handle("/", web.New(client, web.Options{Token: token, Actions: client, Logger: log}))
//	srv := web.NewServer(addr, mux)
package web
