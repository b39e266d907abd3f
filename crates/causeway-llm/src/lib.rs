//! Small language models run on the CPU inside Causeway, with no network and no native library:
//! GGUF files read (`gguf`), their byte-level BPE tokenizer built from the file (`tokenizer`),
//! `Q4_1`/`Q8_0` matrices multiplied by integer kernels (`quant`), the llama architecture's forward
//! pass with a KV cache (`llama`), and chat generation with ChatML, sampling and stop sequences
//! (`chat`); sentence embeddings with a BERT encoder (`bert`: safetensors weights, WordPiece from
//! `tokenizer.json`, mean pooling).
//!
//! Everything runs on the calling thread: a caller that wants N generations at once runs N
//! threads. It knows nothing of HTTP, OpenAI's wire format or the gateway; `causeway-gateway`
//! serves it.

pub mod bert;
pub mod chat;
mod error;
pub mod gguf;
pub mod llama;
pub mod quant;
pub mod safetensors;
pub mod tokenizer;
pub mod wordpiece;

pub use bert::Embedder;
pub use chat::{ChatModel, Finish, Generation, Message, Outcome};
pub use error::{Error, Result};
