# A small image of the tributary binary, for `tributary export kubernetes` and Airflow's
# KubernetesPodOperator:
#
#   docker build -t registry.example.com/tributary:1.4 .
#
# The binary needs only the C library at run time (the desktop app's window libraries are
# loaded when the app opens, never by `tributary run`), so a slim Debian with the
# authorities' certificates is enough.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tributary

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/tributary /usr/local/bin/tributary
# Not root; its own files (run records, state when it is not in PostgreSQL) here.
USER 65532:65532
ENV TRIBUTARY_HOME=/var/lib/tributary
ENTRYPOINT ["tributary"]
