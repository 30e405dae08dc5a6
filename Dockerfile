# syntax=docker/dockerfile:1
# Liveline: `docker run -e DATABASE_URL=postgresql://… -p 8000:8000 liveline`
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --create-home --uid 10001 liveline
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER liveline
WORKDIR /home/liveline
ENV LIVELINE_DATA_DIR=/home/liveline/data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2).status == 200 else 1)"
CMD ["liveline", "serve", "--host", "0.0.0.0", "--port", "8000"]
