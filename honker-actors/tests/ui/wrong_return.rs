use honker_actors::job;

#[job]
async fn wrong_return(n: u32) -> u32 {
    n
}

fn main() {}
