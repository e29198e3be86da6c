//! Project automation (`cargo xtask ci|bench|docker`): the commands README and CI call.

fn main() {
    println!("xtask: see README");
}
