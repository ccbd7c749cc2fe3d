// The engine boundary: what a training engine (tfjs on wasm/cpu/tfjs-node, or the native ONNX
// Runtime engine) must do. The training loop (shuffling, progress, stop, divergence, history)
// is shared and drives any engine through this interface; weights travel in TensorFlow.js
// layout so they go back into the tfjs model that predict, evaluate, plot and model-save use.
export type Activation = 'relu' | 'tanh' | 'sigmoid' | 'elu' | 'selu' | 'linear';
export const ACTIVATIONS: Activation[] = ['relu', 'tanh', 'sigmoid', 'elu', 'selu', 'linear'];

export type OptimizerName = 'sgd' | 'adam';
export type LossName = 'mse' | 'crossentropy';

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  momentum: number;
  optimizer: OptimizerName;
  loss: LossName;
  shuffle: boolean;
  seed: number;
  /** the learning rate is multiplied by this after each epoch (PyTorch's StepLR with step 1); 1 or absent: constant */
  lrDecay?: number;
  /** each epoch trains on a fresh randomly turned, scaled and shifted copy of the images (augment.ts) */
  augment?: boolean;
}

/** The tutorial's recipe. */
export const TRAIN_DEFAULTS: TrainOptions = {
  epochs: 3, batchSize: 512, learningRate: 0.005, momentum: 0.9, optimizer: 'sgd', loss: 'mse', shuffle: true, seed: 0,
};

export interface Progress { epoch: number; epochs: number; batch: number; batches: number; loss: number; samplesPerSecond: number }
/**
 * One epoch; `partial` is the fraction done when training stopped within it; `valLoss` and
 * `valAccuracy` are measured on the held-out samples after it, when training holds some out.
 */
export interface EpochRecord { epoch: number; loss: number; seconds: number; learningRate: number; partial?: number; valLoss?: number; valAccuracy?: number }
export interface History { loss: number[]; epochs: EpochRecord[]; batchesPerEpoch: number }

export type LayerSpec =
  | { kind: 'dense'; units: number; activation: Activation }
  /** stride 1, no padding ('valid'), like PyTorch's nn.Conv2d(in, filters, kernelSize) */
  | { kind: 'conv2d'; filters: number; kernelSize: number; activation: Activation }
  /** stride = poolSize, no padding, like nn.MaxPool2d(poolSize) */
  | { kind: 'maxpool2d'; poolSize: number }
  | { kind: 'flatten' }
  | { kind: 'dropout'; rate: number };

export interface ModelSpec {
  /** One input: rows, cols, channels. A model whose first layer is dense takes rows*cols flat values. */
  inputShape: [number, number, number];
  /** In order; the last is dense with one unit per class and a linear activation (logits). */
  layers: LayerSpec[];
}

/**
 * Weights in tfjs's model.getWeights() order and layout: per layer with weights, kernel then bias.
 * dense kernel [in, out]; conv2d kernel [kh, kw, inChannels, filters]; a dense layer after a
 * flatten of a conv output reads it in NHWC order (h, w, c).
 */
export type Weights = Float32Array[];

/** A split as bytes: never copied into floats in full outside the engine. */
export interface TrainData {
  /** count * rows * cols pixel bytes 0-255, row-major (may be backed by a SharedArrayBuffer) */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
  /** applied on the way in: ((byte / 255) - mean) / std; null means byte / 255 */
  normalization: { mean: number; std: number } | null;
  classes: number;
}

/** Samples held out of training to measure it: bytes and labels like TrainData's. */
export interface HeldOut { images: Uint8Array; labels: Uint8Array; count: number }

export interface EngineSession {
  /**
   * One optimizer step per batch, in order (each batch lists sample indices into the data);
   * resolves with each batch's mean loss before that batch's update, as tfjs's minimize returns it.
   */
  run(batches: Int32Array[]): Promise<Float32Array>;
  getWeights(): Promise<Weights>;
  setWeights(weights: Weights): Promise<void>;
  /**
   * The current weights on held-out samples (same pixel layout and normalization as the
   * training data): the mean loss and each sample's predicted class. Leaves the weights alone.
   */
  evaluate(held: HeldOut): Promise<{ loss: number; predicted: Int32Array }>;
  /** The learning rate from the next step on (optimizer state kept, as tfjs's setLearningRate). */
  setLearningRate(lr: number): Promise<void>;
  /** Other pixels for the same samples (an augmented copy), from the next step on. */
  setImages(images: Uint8Array): Promise<void>;
  /** Frees everything the session holds (tensors, native sessions, optimizer state). */
  dispose(): void;
}

export interface TrainEngine {
  /** 'native' (ONNX Runtime) or the tfjs backend's name: 'tensorflow', 'wasm', 'cpu' */
  readonly name: string;
  /** compute threads this engine uses */
  readonly threads: number;
  open(spec: ModelSpec, weights: Weights, data: TrainData, options: TrainOptions): Promise<EngineSession>;
}
