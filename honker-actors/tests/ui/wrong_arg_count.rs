use honker_actors::{job, JobContext, JobError};

#[job]
async fn too_many(ctx: JobContext, a: u32, b: u32) -> Result<(), JobError> {
    let _ = (ctx, a, b);
    Ok(())
}

fn main() {}
