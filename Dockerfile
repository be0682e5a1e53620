# regload's Locust harness (and the `regload` command line) in a small image.
#
#   docker build -t regload .
#   docker run --rm -p 8089:8089 regload --host http://registry.example:5000              # web UI
#   docker run --rm regload --host http://registry.example:5000 --headless -u 50 -r 10 -t 5m
#   docker run --rm --entrypoint regload regload push synthetic:layers=2,size=10MiB registry.example:5000/test:1
#
# docker-compose.yml runs it with a registry, a master and scalable workers. The image has no
# registry binary: always give --host.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The package and its console script go to site-packages; the sources are not kept.
COPY pyproject.toml README.md /tmp/regload-src/
COPY regload /tmp/regload-src/regload
RUN pip install /tmp/regload-src && rm -rf /tmp/regload-src

# What Locust runs: the locustfile, and the examples (`-f /app/examples/custom_scenario.py`).
COPY locustfile.py /app/
COPY examples /app/examples

RUN useradd --create-home --uid 10001 --user-group regload
USER regload
# Writable: --csv, --html and --json-file outputs land here.
WORKDIR /home/regload

# 8089: web UI; 5557: where workers connect to a master.
EXPOSE 8089 5557
ENTRYPOINT ["locust", "-f", "/app/locustfile.py"]
