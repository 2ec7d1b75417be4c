# One image for both binaries: /usr/local/bin/coordinator and /usr/local/bin/worker,
# plus the example Job's files in /usr/share/workq/examples/.
#
#   docker build -t workq:latest .
#
# The final stage keeps /bin/sh (busybox) because workers run user commands in it.
# Both base images can be swapped, e.g. for a mirror:
#   docker build --build-arg GO_IMAGE=mirror/golang:1.26 --build-arg BASE_IMAGE=mirror/alpine:3.22 .

ARG GO_IMAGE=golang:1.26
ARG BASE_IMAGE=alpine:3.22

FROM ${GO_IMAGE} AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/coordinator ./cmd/worker

FROM ${BASE_IMAGE}
# The user workq (10001), written directly so that any base with /bin/sh will do.
RUN echo 'workq:x:10001:10001:workq:/nonexistent:/sbin/nologin' >> /etc/passwd \
 && echo 'workq:x:10001:' >> /etc/group
COPY --from=build /out/coordinator /out/worker /usr/local/bin/
COPY examples/words.txt examples/wordlen.sh /usr/share/workq/examples/
USER 10001:10001
WORKDIR /tmp
# 8080: coordinator serve (/healthz, /metrics); 9090: worker --metrics-listen.
EXPOSE 8080 9090
CMD ["coordinator", "--help"]
