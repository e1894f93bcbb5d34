/** The Docker engine could not be reached or refused an operation we rely on. */
export class DockerUnavailableError extends Error {
  readonly code = 'DOCKER_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DockerUnavailableError';
  }
}

/** The sandbox image for a runtime is missing: the set-up step has not built it. */
export class ImageMissingError extends Error {
  readonly code = 'IMAGE_MISSING';
  constructor(readonly image: string) {
    super(`Sandbox image ${image} is not present; run "npm run setup" to build it`);
    this.name = 'ImageMissingError';
  }
}

/** The engine refused an operation (`status` is its HTTP answer); what it said is in the message. */
export class ContainerEngineError extends Error {
  readonly code = 'CONTAINER_ENGINE';
  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ContainerEngineError';
  }
}

/** The execution was called off (its caller went away): the program was killed and its sandbox removed. */
export class ExecutionAbortedError extends Error {
  readonly code = 'EXECUTION_ABORTED';
  constructor(readonly executionId: string) {
    super(`execution ${executionId} was aborted`);
    this.name = 'ExecutionAbortedError';
  }
}
