# One image for both binaries: /usr/local/bin/coordinator and /usr/local/bin/worker,
# plus the example Job's files in /usr/share/workq/examples/.
#
#   docker build -t workq:latest .
#
# The final stage keeps /bin/sh (busybox) because workers run user commands in it.

ARG GO_VERSION=1.26
ARG ALPINE_VERSION=3.22

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/coordinator ./cmd/worker

FROM alpine:${ALPINE_VERSION}
RUN addgroup -S -g 10001 workq \
 && adduser -S -D -H -u 10001 -G workq -h /nonexistent -s /sbin/nologin workq
COPY --from=build /out/coordinator /out/worker /usr/local/bin/
COPY examples/words.txt examples/wordlen.sh /usr/share/workq/examples/
USER 10001:10001
WORKDIR /tmp
# 8080: coordinator serve (/healthz, /metrics); 9090: worker --metrics-listen.
EXPOSE 8080 9090
CMD ["coordinator", "--help"]
