# The one image of habitjobs: `habitjobs api`, `habitjobs worker` and `habitjobs db upgrade` (see
# docker-compose.yml). Dependencies are installed at the exact versions of constraints.txt.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/habitjobs
WORKDIR /build
# Dependencies first: this layer is rebuilt only when the pins change, not at every code change. Only the
# dependencies are installed here (read from pyproject.toml): building the package itself now would leave
# build output behind that a later build could keep instead of the real source.
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
 && /opt/habitjobs/bin/pip install -c constraints.txt -r /tmp/requirements.txt
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
