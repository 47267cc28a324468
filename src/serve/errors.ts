// What the server answers when something is wrong: an HTTP status and `{"error": "<message>"}`
// (the Open Inference Protocol's error body), never a stack trace.
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    /** extra response headers (Retry-After, Connection: close) */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** The body of every error reply. */
export interface ErrorBody {
  error: string;
}
