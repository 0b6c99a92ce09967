# ringturn in a container. Build: docker build -t ringturn .
# Run with the host's network (a TURN server hands out relay ports by the
# thousand and must see clients' real addresses; publishing a port range
# through Docker's proxy does neither well) and your own config:
#   docker run --network host -v /etc/ringturn:/etc/ringturn:ro ringturn
# Not exercised by the test suite (README: "Install it as a service").

FROM rust:1-bookworm AS build
# clang and the libbpf headers build the XDP program (xdp-interface=).
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang libbpf-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --workspace --locked

FROM debian:bookworm-slim
RUN useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin ringturn
COPY --from=build /src/target/release/ringturn /src/target/release/ringturn-loadgen /usr/bin/
COPY packaging/turnserver.conf /etc/ringturn/turnserver.conf
USER ringturn
EXPOSE 3478/udp 3478/tcp 5349/tcp
ENTRYPOINT ["/usr/bin/ringturn"]
CMD ["-c", "/etc/ringturn/turnserver.conf"]
