// The server's Prometheus metrics (text format at GET /metrics), in base units with Prometheus'
// naming: requests by output format and status code, request latency, queue depth, batch sizes,
// forward-pass time; plus prom-client's process metrics (resident memory, CPU, event-loop lag).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'format' | 'code'>;
  readonly latency: Histogram<'format'>;
  readonly queueWait: Histogram;
  readonly batchSize: Histogram;
  readonly inference: Histogram;

  constructor(model: string, maxBatch: number, queueDepth: () => number, liveTensors: () => number | undefined) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ model });
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'deeplab_requests_total',
      help: 'segmentation requests, by output format and HTTP status code',
      labelNames: ['format', 'code'],
      registers,
    });
    this.latency = new Histogram({
      name: 'deeplab_request_duration_seconds',
      help: 'segmentation request latency, from the request to the reply',
      labelNames: ['format'],
      registers,
    });
    this.queueWait = new Histogram({
      name: 'deeplab_queue_duration_seconds',
      help: 'time an image waited for the model',
      registers,
    });
    this.batchSize = new Histogram({
      name: 'deeplab_batch_size',
      help: 'images per forward pass',
      buckets: Array.from({ length: maxBatch }, (_, i) => i + 1),
      registers,
    });
    this.inference = new Histogram({
      name: 'deeplab_inference_duration_seconds',
      help: 'forward-pass time of one batch, on the model thread',
      registers,
    });
    new Gauge({
      name: 'deeplab_model_live_tensors',
      help: 'tensors alive on the model thread after its last batch (its weights; growth would be a leak)',
      registers,
      collect() {
        const n = liveTensors();
        if (n !== undefined) this.set(n);
      },
    });
    new Gauge({
      name: 'deeplab_queue_depth',
      help: 'images waiting for the model',
      registers,
      collect() {
        this.set(queueDepth());
      },
    });
  }
}
