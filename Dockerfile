# The one image of habitjobs: `habitjobs api`, `habitjobs worker` and `habitjobs db upgrade` (see
# docker-compose.yml). Dependencies are installed from requirements/base.lock (exact versions, hash-checked).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/habitjobs
WORKDIR /build
# Dependencies first, hash-checked: this layer is rebuilt only when the pins change, not at every code
# change. Only the dependencies are installed here: building the package itself now would leave build
# output behind that a later build could keep instead of the real source.
COPY requirements/base.lock ./
RUN /opt/habitjobs/bin/pip install --require-hashes --no-deps -r base.lock
COPY pyproject.toml README.md ./
COPY src ./src
# A wheel built from a clean tree (no build/ or egg-info left by anything), then installed.
RUN rm -rf build src/*.egg-info \
 && /opt/habitjobs/bin/pip wheel --no-deps --wheel-dir /tmp/wheel . \
 && /opt/habitjobs/bin/pip install --no-deps /tmp/wheel/habitjobs-*.whl

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin habitjobs
COPY --from=build /opt/habitjobs /opt/habitjobs
ENV PATH=/opt/habitjobs/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HABITJOBS_ENV=prod \
    HABITJOBS_API_HOST=0.0.0.0 \
    HABITJOBS_API_PORT=8000
USER habitjobs
EXPOSE 8000
ENTRYPOINT ["habitjobs"]
CMD ["api"]
