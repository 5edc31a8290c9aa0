# One image, both binaries: backup-apiserver (the aggregated API server with its
# controllers) and backup-mover (the data mover the controllers run as Jobs).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd cmd
COPY pkg pkg
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/...

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/backup-apiserver /out/backup-mover /
USER 65532:65532
ENTRYPOINT ["/backup-apiserver"]
